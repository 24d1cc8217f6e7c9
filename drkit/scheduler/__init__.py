"""The scheduler service (`drkit scheduler run`): see service.py for how it fits together."""

from drkit.scheduler.service import Service, ServiceOptions, run_spec

__all__ = ["Service", "ServiceOptions", "run_spec"]
