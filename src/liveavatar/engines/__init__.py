"""Engines turn prepared inputs and a Plan into blocks of video frames."""
