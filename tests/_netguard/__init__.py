"""The network guard shared by the test process and every Python process it starts."""
