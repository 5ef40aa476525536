"""fake-conmon: the container monitor, modelled on conmon-rs."""
