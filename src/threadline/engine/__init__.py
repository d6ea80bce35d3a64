"""The run engine: state machine, context building, tool dispatch, run steps and stream events."""
