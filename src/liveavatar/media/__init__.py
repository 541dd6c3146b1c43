"""Reading inputs and writing the video."""
