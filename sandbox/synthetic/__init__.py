"""A deterministic synthetic population: the same seed gives the same people, byte for byte."""

from sandbox.synthetic.population import KINDS, Person, Population

__all__ = ["KINDS", "Person", "Population"]
