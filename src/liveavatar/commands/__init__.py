"""One module per `liveavatar` subcommand."""
