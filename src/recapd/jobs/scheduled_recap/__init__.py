"""The scheduled_recap job type: the seed's scheduler and worker."""
