"""Training of the reference spam model and its registration in the MLflow model registry."""
