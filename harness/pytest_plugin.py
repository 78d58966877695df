"""pytest plugin (entry point `memcycle`): collects scenarios/*.toml as test items.

(Collection and options are built in the reports/plugin issue; this module must
exist because pyproject registers it as a pytest11 entry point.)
"""
