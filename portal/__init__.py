"""Nordic returns portal: the Litestar application, its models, services, jobs and CLI."""

__version__ = "0.1.0"
