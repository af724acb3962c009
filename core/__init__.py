"""MarketPulse core engine: pure Python, no Streamlit, no concrete store backend."""
