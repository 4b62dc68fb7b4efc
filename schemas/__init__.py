"""The dataset contract: pandera models per table and their Arrow types (`schemas.tables`), the
parser's rules (`schemas.rules`, which needs no pandera) and row checks (`schemas.validate`)."""
