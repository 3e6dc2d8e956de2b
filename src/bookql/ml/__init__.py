"""The price model: features (pandas), XGBoost training, versioned models on disk."""
