"""Operations: readiness, metrics, backup and restore."""
