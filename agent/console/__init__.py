"""The web console: incidents, suggestions, runs, compliance and health over the App's services, behind mutual TLS."""
