"""The test library: what more than one test module uses (`tests.lib.*`).

`helpers` (the CLI runner, commits, the render matrix), `act_runner` (a team repo's
workflows under act), `fake_github` and `fake_clouds` (the GitHub API and the clouds'
token services on loopback), `iris_contract` and `tier_plugin` (the tiers' collection).
"""
