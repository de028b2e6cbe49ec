"""The FPGA flow: a configuration's Verilog through Yosys, nextpnr and the bitstream packer, and
what it costs on a real device (docs/fpga.md). ``lowbit synth`` is its command line (``cli``).

One module per job: ``targets`` and ``options`` (the validated records a run reads), ``flow``
(the run as named steps: generate, synthesis, analysis, netlist-passes, place-and-route,
bitstream), ``wrapper`` (the core's Verilog and the seven-pin wrapper), ``yosys`` (scripts and
the DSP and PE-form choices), ``nextpnr`` and ``seed_race`` (place-and-route on several seeds),
``passes`` (netlist changes before placement, one interface), ``analysis`` (depth, slack and
area read from the netlist and nextpnr's report), ``report`` (the result and report.md) and
``tools`` (running the yowasp tools).
"""
