"""The DVC pipeline stages: ingest -> prepare -> train -> evaluate (see dvc.yaml)."""
