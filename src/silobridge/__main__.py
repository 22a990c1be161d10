from silobridge.cli.main import app

app(prog_name="silobridge")
