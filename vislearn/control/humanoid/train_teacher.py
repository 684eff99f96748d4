"""`vislearn control humanoid train-teacher`: PPO on the privileged state (train.py)."""
import sys

from .train import cli

main = cli("teacher")

if __name__ == "__main__":
    sys.exit(main())
