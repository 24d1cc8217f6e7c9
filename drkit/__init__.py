"""drkit: backup and disaster recovery that proves itself."""

__version__ = "0.1.0"
