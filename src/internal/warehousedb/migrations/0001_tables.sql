-- The four warehouse tables. Column names and order follow tables.go: the
-- data columns in CSV order, then the bookkeeping columns createdDate and
-- modifiedDate, which Load sets explicitly in its upsert (never through
-- DEFAULT or ON UPDATE CURRENT_TIMESTAMP). Text is utf8mb4 VARCHAR(1024)
-- (warehouse.TextMaxChars). No foreign keys: characters may arrive before
-- their locations and episodes.

CREATE TABLE IF NOT EXISTS `locations` (
  `id`           INT           NOT NULL,
  `name`         VARCHAR(1024) NOT NULL,
  `type`         VARCHAR(1024) NOT NULL,
  `dimension`    VARCHAR(1024) NOT NULL,
  `url`          VARCHAR(1024) NOT NULL,
  `created`      DATETIME(3)   NOT NULL,
  `fetched_at`   DATETIME(3)   NOT NULL,
  `createdDate`  DATETIME(6)   NOT NULL,
  `modifiedDate` DATETIME(6)   NULL,
  PRIMARY KEY (`id`),
  KEY `ix_createdDate` (`createdDate`),
  KEY `ix_modifiedDate` (`modifiedDate`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `characters` (
  `id`            INT           NOT NULL,
  `name`          VARCHAR(1024) NOT NULL,
  `status`        VARCHAR(1024) NOT NULL,
  `species`       VARCHAR(1024) NOT NULL,
  `type`          VARCHAR(1024) NOT NULL,
  `gender`        VARCHAR(1024) NOT NULL,
  `origin_id`     INT           NULL,
  `origin_name`   VARCHAR(1024) NOT NULL,
  `location_id`   INT           NULL,
  `location_name` VARCHAR(1024) NOT NULL,
  `image`         VARCHAR(1024) NOT NULL,
  `url`           VARCHAR(1024) NOT NULL,
  `created`       DATETIME(3)   NOT NULL,
  `fetched_at`    DATETIME(3)   NOT NULL,
  `createdDate`   DATETIME(6)   NOT NULL,
  `modifiedDate`  DATETIME(6)   NULL,
  PRIMARY KEY (`id`),
  KEY `ix_createdDate` (`createdDate`),
  KEY `ix_modifiedDate` (`modifiedDate`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `episodes` (
  `id`             INT           NOT NULL,
  `name`           VARCHAR(1024) NOT NULL,
  `air_date`       DATE          NOT NULL,
  `episode`        VARCHAR(1024) NOT NULL,
  `season`         INT           NOT NULL,
  `episode_number` INT           NOT NULL,
  `url`            VARCHAR(1024) NOT NULL,
  `created`        DATETIME(3)   NOT NULL,
  `fetched_at`     DATETIME(3)   NOT NULL,
  `createdDate`    DATETIME(6)   NOT NULL,
  `modifiedDate`   DATETIME(6)   NULL,
  PRIMARY KEY (`id`),
  KEY `ix_createdDate` (`createdDate`),
  KEY `ix_modifiedDate` (`modifiedDate`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `character_episodes` (
  `character_id` INT         NOT NULL,
  `episode_id`   INT         NOT NULL,
  `createdDate`  DATETIME(6) NOT NULL,
  `modifiedDate` DATETIME(6) NULL,
  PRIMARY KEY (`character_id`, `episode_id`),
  KEY `ix_episode_id` (`episode_id`),
  KEY `ix_createdDate` (`createdDate`),
  KEY `ix_modifiedDate` (`modifiedDate`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
