"""Where a tile is: the TileGrid, tilejson reading (and the seed pipeline's profile), tile sources (on
disk, on a web server, in a bucket), a tile set's extent, a region resolved to tiles.

May import util and backends (Cloud Storage).
"""
