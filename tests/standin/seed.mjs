// Demo warehouse the BigQuery stand-in starts with, for the sluice tests.
//
// Project demo-project, location US, datasets crm, sales, hr:
//   crm.customers  50 rows of fake but real-looking PII (emails at
//                  example.com, 555-01xx phone numbers, SSN-shaped strings,
//                  Luhn-valid test card numbers), with a RECORD and a
//                  REPEATED column
//   sales.orders   200 rows
//   hr.salaries    20 rows
// Everything is computed from the row number: no randomness, so tests can
// assert exact values (the exported generators give them the same rows).

import { quoteStr, quoteIdent } from './sqlxlate.mjs';

export const PROJECT = 'demo-project';

const FIRST = ['Alice', 'Bob', 'Carol', 'David', 'Emma', 'Frank', 'Grace', 'Henry', 'Isabel', 'Jack',
	'Karen', 'Liam', 'Maria', 'Noah', 'Olivia', 'Peter', 'Quinn', 'Rachel', 'Samuel', 'Tina',
	'Umar', 'Vera', 'William', 'Xenia', 'Yusuf', 'Zoe', 'Aaron', 'Bianca', 'Carlos', 'Diana',
	'Ethan', 'Fatima', 'George', 'Hannah', 'Ivan', 'Julia', 'Kevin', 'Laura', 'Marcus', 'Nina',
	'Oscar', 'Priya', 'Ravi', 'Sofia', 'Thomas', 'Ursula', 'Victor', 'Wendy', 'Yara', 'Zachary'];
const LAST = ['Johnson', 'Smith', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez',
	'Martinez', 'Hernandez', 'Lopez', 'Wilson', 'Anderson', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee'];
const STREETS = ['Main St', 'Oak Ave', 'Maple Dr', 'Cedar Ln', 'Pine St', 'Elm St', 'Lakeview Rd', 'Hillside Ave'];
const CITIES = ['Springfield', 'Riverside', 'Fairview', 'Franklin', 'Greenville', 'Madison', 'Georgetown', 'Salem'];
const TAGS = [['vip'], [], ['newsletter'], ['newsletter', 'beta'], ['churn-risk'], ['vip', 'newsletter'], []];
const STATUSES = ['delivered', 'shipped', 'pending', 'delivered', 'cancelled', 'delivered', 'refunded', 'shipped'];

const pad = (n, w) => String(n).padStart(w, '0');

function luhn(digits) {
	let sum = 0;
	for (let i = 0; i < digits.length; i++) {
		let d = Number(digits[digits.length - 1 - i]);
		if (i % 2 === 0) {
			d *= 2;
			if (d > 9) d -= 9;
		}
		sum += d;
	}
	return String((10 - (sum % 10)) % 10);
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export function customers() {
	const base = Date.UTC(2023, 0, 1);
	return FIRST.map((first, i) => {
		const id = i + 1;
		const last = LAST[(i * 7) % LAST.length];
		let area = 100 + ((i * 37) % 600);
		if (area === 666) area = 667;
		const body = '4' + pad((i * 7919 + 12345) % 1e9, 9) + pad((i * 104729) % 1e5, 5);
		const card = body + luhn(body);
		return {
			customer_id: id,
			name: `${first} ${last}`,
			email: `${first.toLowerCase()}.${last.toLowerCase()}@example.com`,
			phone: `+1-555-01${pad(i % 100, 2)}`,
			ssn: `${pad(area, 3)}-${pad(10 + ((i * 13) % 89), 2)}-${pad(1000 + ((i * 7919) % 9000), 4)}`,
			card_number: `${card.slice(0, 4)}-${card.slice(4, 8)}-${card.slice(8, 12)}-${card.slice(12)}`,
			birth_date: `${1950 + ((i * 7) % 50)}-${pad(1 + ((i * 5) % 12), 2)}-${pad(1 + ((i * 11) % 28), 2)}`,
			address: { street: `${100 + i * 17} ${STREETS[i % STREETS.length]}`, city: CITIES[(i * 3) % CITIES.length] },
			tags: TAGS[i % TAGS.length],
			created_at: iso(base + i * (3 * 86400e3 + 3607e3) + (i % 4) * 250),
		};
	});
}

export function orders() {
	const base = Date.UTC(2024, 0, 1);
	return Array.from({ length: 200 }, (_, i) => ({
		order_id: 1000 + i,
		customer_id: 1 + ((i * 7) % 50),
		amount: (500 + ((i * 7919) % 49500)) / 100,
		status: STATUSES[i % STATUSES.length],
		ordered_at: iso(base + i * 43 * 3600e3 + ((i * 61) % 3600) * 1e3),
	}));
}

export function salaries() {
	return Array.from({ length: 20 }, (_, i) => ({
		employee_id: 1 + i,
		name: `${FIRST[(i * 3 + 1) % FIRST.length]} ${LAST[(i * 5 + 2) % LAST.length]}`,
		salary: 60000 + ((i * 7331) % 90) * 1000,
		bonus: i % 3 === 0 ? null : ((i * 1777) % 20000) / 4,
	}));
}

export const TABLES = {
	crm: {
		customers: {
			ddl: `customer_id BIGINT NOT NULL, name VARCHAR, email VARCHAR, phone VARCHAR, ssn VARCHAR,
				card_number VARCHAR, birth_date DATE, address STRUCT(street VARCHAR, city VARCHAR),
				tags VARCHAR[], created_at TIMESTAMPTZ`,
			rows: customers,
			row: (c) => [c.customer_id, quoteStr(c.name), quoteStr(c.email), quoteStr(c.phone), quoteStr(c.ssn),
				quoteStr(c.card_number), `DATE ${quoteStr(c.birth_date)}`,
				`{'street': ${quoteStr(c.address.street)}, 'city': ${quoteStr(c.address.city)}}`,
				`[${c.tags.map(quoteStr).join(', ')}]::VARCHAR[]`, `TIMESTAMPTZ ${quoteStr(c.created_at)}`],
		},
	},
	sales: {
		orders: {
			ddl: 'order_id BIGINT NOT NULL, customer_id BIGINT, amount DECIMAL(38,9), status VARCHAR, ordered_at TIMESTAMPTZ',
			rows: orders,
			row: (o) => [o.order_id, o.customer_id, o.amount.toFixed(2), quoteStr(o.status), `TIMESTAMPTZ ${quoteStr(o.ordered_at)}`],
		},
	},
	hr: {
		salaries: {
			ddl: 'employee_id BIGINT NOT NULL, name VARCHAR, salary BIGINT, bonus DOUBLE',
			rows: salaries,
			row: (s) => [s.employee_id, quoteStr(s.name), s.salary, s.bonus === null ? 'NULL' : s.bonus],
		},
	},
};

export async function seed(engine) {
	for (const [ds, tables] of Object.entries(TABLES)) {
		await engine.createDataset(PROJECT, ds, { description: `Demo ${ds} dataset` });
		for (const [name, t] of Object.entries(tables)) {
			const fq = [PROJECT, ds, name].map(quoteIdent).join('.');
			await engine.exec(`CREATE TABLE ${fq} (${t.ddl})`);
			const values = t.rows().map((r) => `(${t.row(r).join(', ')})`);
			await engine.exec(`INSERT INTO ${fq} VALUES ${values.join(',\n')}`);
		}
	}
}
