"""genirq: interrupt descriptors, the controller, flow handlers, spurious detection and
the request/free/enable/disable management calls (stages 1-3 of the seed)."""
