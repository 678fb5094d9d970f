"""Session features: the base class and one module or package per feature (see only the model)."""
