"""Benchmarks: workloads, runners of rock_vec and its peers, and suites
(``suites``), training loops as users run them (``train_loops``), policies
for the CNN loop (``policies``) and charts (``plot``). Above every face: it
measures them as users meet them.
"""
