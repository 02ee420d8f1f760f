-- The exporter's position index: every warehouse table gets export_position,
-- a generated column equal to COALESCE(`modifiedDate`, `createdDate`) (the
-- exporter's default position timestamp, which it recognises and orders by;
-- see package export), STORED and INVISIBLE (out of SELECT * and of the
-- exports), indexed. An incremental export is then a range of that index
-- instead of a scan and sort of the whole table. STORED, not VIRTUAL:
-- MariaDB 10.11 returns corrupt rows for a range on an indexed virtual column
-- followed by a filesort on the key.
--
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS: each table's ALTER (column and
-- index in one atomic statement) is prepared only while information_schema
-- does not show the column, so the migration can run again after dying half
-- way. PREPARE of ALTER TABLE and SELECT runs on MySQL 8 and MariaDB alike.
--
-- go-mysql-server (the local engine, @@version_comment 'Dolt') is left
-- alone: its virtual columns break every query of the table, and a stored
-- one is neither invisible nor described in information_schema (so it
-- would be exported, and its local snapshot could not be restored). There
-- the exporter reads the due rows in one ordered query and does not warn
-- about the missing index (package export, tableInfo.chooseOrder).

SET @export_position_ddl = IF(@@version_comment LIKE 'Dolt%' OR EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'locations' AND COLUMN_NAME = 'export_position'),
  'SELECT 1',
  'ALTER TABLE `locations` ADD COLUMN `export_position` DATETIME(6) AS (COALESCE(`modifiedDate`, `createdDate`)) STORED INVISIBLE, ADD INDEX `ix_export_position` (`export_position`)');
PREPARE export_position_stmt FROM @export_position_ddl;
EXECUTE export_position_stmt;
DEALLOCATE PREPARE export_position_stmt;

SET @export_position_ddl = IF(@@version_comment LIKE 'Dolt%' OR EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'characters' AND COLUMN_NAME = 'export_position'),
  'SELECT 1',
  'ALTER TABLE `characters` ADD COLUMN `export_position` DATETIME(6) AS (COALESCE(`modifiedDate`, `createdDate`)) STORED INVISIBLE, ADD INDEX `ix_export_position` (`export_position`)');
PREPARE export_position_stmt FROM @export_position_ddl;
EXECUTE export_position_stmt;
DEALLOCATE PREPARE export_position_stmt;

SET @export_position_ddl = IF(@@version_comment LIKE 'Dolt%' OR EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'episodes' AND COLUMN_NAME = 'export_position'),
  'SELECT 1',
  'ALTER TABLE `episodes` ADD COLUMN `export_position` DATETIME(6) AS (COALESCE(`modifiedDate`, `createdDate`)) STORED INVISIBLE, ADD INDEX `ix_export_position` (`export_position`)');
PREPARE export_position_stmt FROM @export_position_ddl;
EXECUTE export_position_stmt;
DEALLOCATE PREPARE export_position_stmt;

SET @export_position_ddl = IF(@@version_comment LIKE 'Dolt%' OR EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'character_episodes' AND COLUMN_NAME = 'export_position'),
  'SELECT 1',
  'ALTER TABLE `character_episodes` ADD COLUMN `export_position` DATETIME(6) AS (COALESCE(`modifiedDate`, `createdDate`)) STORED INVISIBLE, ADD INDEX `ix_export_position` (`export_position`)');
PREPARE export_position_stmt FROM @export_position_ddl;
EXECUTE export_position_stmt;
DEALLOCATE PREPARE export_position_stmt;
