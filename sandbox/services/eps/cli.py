"""STUB (helper C replaces): `spine-sandbox eps …` commands."""

import click


@click.group("eps")
def eps() -> None:
    """Electronic Prescription Service: the sandbox's test CA, certificates and signatures."""
