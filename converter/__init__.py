"""The converter: Hugging Face checkpoints -> .sqf (k-means, RTN, dense-and-sparse, Fisher)."""
