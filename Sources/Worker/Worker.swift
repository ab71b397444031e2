// The worker: executes jobs with the Engine.
