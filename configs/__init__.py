"""Config files for `python main.py --config=configs/<name>.py`; each has get_config()."""
