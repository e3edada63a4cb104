"""Configuration: one frozen base model, the section models, and loading from TOML files."""
