"""Grid management: EGAT and MEA/PEA status updates, congestion and grid emergencies."""
