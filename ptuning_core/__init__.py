"""P-tuning Studio core: continuous prompts for a frozen language model. No Streamlit here."""
from ptuning_core.template import TemplateError, parse, to_continuous, to_discrete  # noqa: F401

__version__ = "0.1.0"
