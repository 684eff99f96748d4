"""YAML run configurations (packaged so installed copies find them too)."""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
