package fooddb

// ddl creates the nine tables of the food-delivery database, parents first.
// Every table has createdDate DATETIME(6) NOT NULL and modifiedDate
// DATETIME(6) NULL (NULL until the row is updated), the default watermark
// columns of the exporter.
var ddl = []string{
	`CREATE TABLE IF NOT EXISTS location (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  city VARCHAR(64) NOT NULL,
  state CHAR(2) NOT NULL,
  zip_code VARCHAR(10) NOT NULL,
  latitude DECIMAL(9,6) NOT NULL,
  longitude DECIMAL(9,6) NOT NULL,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS customer (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(50) NOT NULL,
  last_name VARCHAR(50) NOT NULL,
  email VARCHAR(120) NOT NULL,
  phone VARCHAR(20) NULL,
  date_of_birth DATE NULL,
  loyalty_points INT NOT NULL DEFAULT 0,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_customer_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS restaurant (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  cuisine VARCHAR(40) NOT NULL,
  location_id INT UNSIGNED NOT NULL,
  rating DECIMAL(2,1) NULL,
  avg_prep_minutes SMALLINT UNSIGNED NOT NULL,
  opened_on DATE NOT NULL,
  is_open TINYINT(1) NOT NULL DEFAULT 1,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_restaurant_location FOREIGN KEY (location_id) REFERENCES location (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS delivery_agent (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(50) NOT NULL,
  last_name VARCHAR(50) NOT NULL,
  phone VARCHAR(20) NOT NULL,
  vehicle_type ENUM('bicycle','scooter','motorbike','car') NOT NULL,
  location_id INT UNSIGNED NOT NULL,
  rating DECIMAL(3,2) NULL,
  hired_on DATE NOT NULL,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_agent_location FOREIGN KEY (location_id) REFERENCES location (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS customer_address (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer_id INT UNSIGNED NOT NULL,
  location_id INT UNSIGNED NOT NULL,
  label VARCHAR(20) NOT NULL,
  street VARCHAR(120) NOT NULL,
  apartment VARCHAR(20) NULL,
  delivery_notes TEXT NULL,
  is_default TINYINT(1) NOT NULL DEFAULT 0,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_address_customer FOREIGN KEY (customer_id) REFERENCES customer (id),
  CONSTRAINT fk_address_location FOREIGN KEY (location_id) REFERENCES location (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS menu (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  restaurant_id INT UNSIGNED NOT NULL,
  item_name VARCHAR(100) NOT NULL,
  description TEXT NULL,
  category VARCHAR(40) NOT NULL,
  price DECIMAL(8,2) NOT NULL,
  calories SMALLINT UNSIGNED NULL,
  is_vegetarian TINYINT(1) NOT NULL DEFAULT 0,
  is_available TINYINT(1) NOT NULL DEFAULT 1,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_menu_restaurant FOREIGN KEY (restaurant_id) REFERENCES restaurant (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS orders (
  id BIGINT NOT NULL AUTO_INCREMENT,
  customer_id INT UNSIGNED NOT NULL,
  restaurant_id INT UNSIGNED NOT NULL,
  address_id INT UNSIGNED NOT NULL,
  order_time DATETIME NOT NULL,
  status ENUM('placed','preparing','picked_up','delivered','cancelled') NOT NULL,
  payment_method VARCHAR(16) NOT NULL,
  subtotal DECIMAL(10,2) NOT NULL,
  delivery_fee DECIMAL(6,2) NOT NULL,
  tip DECIMAL(6,2) NULL,
  total DECIMAL(10,2) NOT NULL,
  notes VARCHAR(255) NULL,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customer (id),
  CONSTRAINT fk_orders_restaurant FOREIGN KEY (restaurant_id) REFERENCES restaurant (id),
  CONSTRAINT fk_orders_address FOREIGN KEY (address_id) REFERENCES customer_address (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS order_item (
  order_id BIGINT NOT NULL,
  line_no SMALLINT UNSIGNED NOT NULL,
  menu_id INT UNSIGNED NOT NULL,
  quantity SMALLINT UNSIGNED NOT NULL,
  unit_price DECIMAL(8,2) NOT NULL,
  special_request VARCHAR(255) NULL,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (order_id, line_no),
  CONSTRAINT fk_item_order FOREIGN KEY (order_id) REFERENCES orders (id),
  CONSTRAINT fk_item_menu FOREIGN KEY (menu_id) REFERENCES menu (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,

	`CREATE TABLE IF NOT EXISTS delivery (
  id BIGINT NOT NULL AUTO_INCREMENT,
  order_id BIGINT NOT NULL,
  agent_id INT UNSIGNED NULL,
  status ENUM('pending','assigned','picked_up','delivered','failed') NOT NULL,
  pickup_time DATETIME(3) NULL,
  delivered_time DATETIME(3) NULL,
  distance_km DECIMAL(5,2) NULL,
  customer_rating TINYINT UNSIGNED NULL,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_delivery_order (order_id),
  CONSTRAINT fk_delivery_order FOREIGN KEY (order_id) REFERENCES orders (id),
  CONSTRAINT fk_delivery_agent FOREIGN KEY (agent_id) REFERENCES delivery_agent (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,
}

// exportIndexDDL adds, to table t, the indexed generated column the
// exporter recognises (see package export): COALESCE(modifiedDate,
// createdDate), invisible to SELECT *, so that its keyset queries are
// index range scans instead of a scan and sort per chunk.
func exportIndexDDL(t string) string {
	return "ALTER TABLE `" + t + "` ADD COLUMN IF NOT EXISTS export_position DATETIME(6) " +
		"AS (COALESCE(modifiedDate, createdDate)) VIRTUAL INVISIBLE, " +
		"ADD INDEX IF NOT EXISTS ix_export_position (export_position)"
}
