"""`vislearn control humanoid train-student`: a history policy from a teacher (train.py)."""
import sys

from .train import cli

main = cli("student")

if __name__ == "__main__":
    sys.exit(main())
