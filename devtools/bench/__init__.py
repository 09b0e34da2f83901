"""`make bench`: accuracy and speed of the trained model, pipelines compared, thresholds tuned."""
