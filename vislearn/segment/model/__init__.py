"""The SAM model with the official module tree and parameter names (an official `.pth` loads as it is)."""
