-- load_log records every processed object Load has applied, in the same
-- transaction as its rows, so an exact redelivery is skipped cheaply.
-- object_hash is SHA-256(bucket NUL key NUL version): the unique identity of
-- (bucket, key, version-or-ETag), which is too long for a composite unique
-- index of utf8mb4 VARCHARs. version is "version:<VersionId>" on versioned
-- buckets, else "etag:<ETag>".

CREATE TABLE IF NOT EXISTS `load_log` (
  `object_hash` BINARY(32)    NOT NULL,
  `bucket`      VARCHAR(255)  NOT NULL,
  `object_key`  VARCHAR(1024) NOT NULL,
  `version`     VARCHAR(1100) NOT NULL,
  `table_name`  VARCHAR(64)   NOT NULL,
  `row_count`   BIGINT        NOT NULL,
  `loaded_at`   DATETIME(6)   NOT NULL,
  PRIMARY KEY (`object_hash`),
  KEY `ix_loaded_at` (`loaded_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
