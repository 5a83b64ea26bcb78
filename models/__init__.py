"""Pure estimation: online estimators, the Transformer, fusion, metrics, data loaders."""
