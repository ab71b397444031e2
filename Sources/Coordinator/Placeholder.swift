// The CTNAS search written against JobRunner.
