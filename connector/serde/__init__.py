"""serde."""
