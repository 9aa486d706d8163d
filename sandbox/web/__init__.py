"""The HTTP side: session resolution, the exchange pipeline every service request goes through, the control API."""
