# not a scoring language infergate runs
