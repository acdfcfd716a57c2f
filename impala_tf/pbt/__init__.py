"""Population-based training (paper Appendix F): the exploit/explore rule,
the population directory, the member's hook, its processes and plot."""
