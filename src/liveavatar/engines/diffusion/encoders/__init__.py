"""What conditions the DiT: the umT5 text encoder, wav2vec2 audio features, per-video conditions."""
