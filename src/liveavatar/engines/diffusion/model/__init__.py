"""The causal S2V DiT: the network only (no I/O, no devices, no runtime)."""
