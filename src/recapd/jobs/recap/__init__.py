"""The recap job type: makes one recap."""
