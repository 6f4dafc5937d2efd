"""Synthetic PET data with known truth: compartment models, noise, phantoms and studies."""
