"""The Wan2.1 causal video VAE: encode, streaming decode, spatially tiled decode."""
