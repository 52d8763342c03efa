"""What a team repo's CI runs, as `paved ci verify|image|login|push|drift`.

- `jobs`: the jobs themselves (check, image, drift) and how each reads the repo;
- `image`: the service image (what it holds, the Containerfile, the builders), registry
  login and push;
- `clouds`: which cloud a registry host is, and its credentials from the job's OIDC token,
  through `aws`, `gcp` and `azure` over `tokens` (the one HTTP helper).
"""
