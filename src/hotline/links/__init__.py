"""The life of a link beyond offer and accept: removal (and accepting it again)."""
