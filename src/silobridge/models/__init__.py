"""Model back-ends. One small interface per capability: label scoring (LM), fit/predict (SM)."""
