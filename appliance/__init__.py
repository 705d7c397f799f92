"""The Lumbarest appliance: the dedicated controller process for the heated traction mat.

Pure logic (control, safety rules, the session state machine) takes time as an argument; the
imperative shell (:mod:`appliance.main`, :mod:`appliance.server`, :mod:`appliance.history`) does
the I/O.
"""

__version__ = "0.1.0"
